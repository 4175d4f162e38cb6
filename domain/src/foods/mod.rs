//! What the rules know about foods. The rules, the grocery list and the stand-in model must agree
//! on what an ingredient name means (that "Tomatoes" and "tomato" are one food, that "ghee" is
//! dairy, that "sirloin steak" is beef), because the model's own claims about its recipes are not
//! trusted.
//!
//! A name is normalised first ([`normalize`]: case, punctuation, quantities, plurals,
//! synonyms), then read as a sequence of known food phrases, longest first, so that "peanut
//! butter" is one food and not peanut plus butter. What a phrase is made of, its family and its
//! aisle come from the food table in `data/foods.tsv`, other names from `data/synonyms.tsv`:
//! plain text, so that hundreds of foods stay readable.
//!
//! The parts, each answering one question: `names` (which food a name means), `table` (what
//! the table says about each food), `reading` (which foods a name names), `traits` (what it is
//! made of: diets and restrictions), `matching` (whether it is a given food, and its family),
//! `aisle` (where it is bought).

mod aisle;
mod matching;
mod names;
mod phrases;
mod reading;
mod table;
mod traits;
mod tsv;

pub use aisle::{Aisle, aisle};
pub use matching::{main_key, matches_food};
pub use names::normalize;
pub use traits::{FoodTraits, diet_conflict, restriction_conflict, traits};

/// Names as recipes write them, for the tests of more than one part.
#[cfg(test)]
mod fixtures {
    /// Ingredient names as recipes from many cuisines write them.
    pub(super) const COMMON_INGREDIENTS: &str = "
         2 cups basmati rice, Jasmine rice, arborio rice, sushi rice, brown rice,
         boneless skinless chicken breasts, chicken thighs, whole chicken, chicken wings,
         ground turkey, duck breast, ground beef, beef chuck, flank steak, pork shoulder,
         pork belly, bacon, pancetta, chorizo, Italian sausage, lamb shoulder, lamb chops,
         ground lamb, salmon fillets, cod fillets, canned tuna, shrimp, king prawns, mussels,
         scallops, squid, crab meat, white fish fillets, sea bass, eggs, egg yolks, whole milk,
         heavy cream, butter, ghee, greek yogurt, plain yogurt, sour cream, cream cheese,
         parmesan cheese, feta cheese, fresh mozzarella, shredded cheddar, ricotta, halloumi,
         paneer, goat cheese, gruyère, firm tofu, silken tofu, tempeh, red lentils, green lentils,
         chickpeas, black beans, kidney beans, cannellini beans, edamame, frozen peas, onion,
         red onion, shallots, garlic cloves, fresh ginger, scallions, leeks, carrots, celery stalks,
         potatoes, sweet potatoes, butternut squash, zucchini, eggplant, red bell pepper, jalapeño,
         tomatoes, cherry tomatoes, canned diced tomatoes, tomato paste, passata, spinach,
         baby spinach, kale, bok choy, napa cabbage, broccoli florets, cauliflower, mushrooms,
         shiitake mushrooms, asparagus, green beans, corn kernels, avocado, cucumber, lettuce,
         romaine lettuce, arugula, lemon, lime juice, orange zest, apples, bananas, blueberries,
         strawberries, mango, pineapple, dates, raisins, fresh cilantro, fresh parsley, fresh basil,
         mint leaves, dill, thyme, rosemary, bay leaves, oregano, ground cumin, ground coriander,
         turmeric, paprika, smoked paprika, chili powder, cayenne pepper, red pepper flakes,
         garam masala, curry powder, cinnamon, nutmeg, cardamom pods, star anise, cloves,
         black pepper, sea salt, kosher salt, olive oil, vegetable oil, sesame oil, coconut oil,
         soy sauce, tamari, fish sauce, oyster sauce, hoisin sauce, rice vinegar, balsamic vinegar,
         red wine vinegar, apple cider vinegar, dijon mustard, mayonnaise, ketchup, sriracha,
         gochujang, miso paste, tahini, honey, maple syrup, brown sugar, sugar, all-purpose flour,
         whole wheat flour, cornstarch, baking powder, baking soda, vanilla extract, cocoa powder,
         dark chocolate, rolled oats, quinoa, couscous, bulgur, spaghetti, penne pasta, egg noodles,
         rice noodles, udon noodles, corn tortillas, flour tortillas, pita bread, naan,
         sourdough bread, panko breadcrumbs, chicken stock, vegetable broth, coconut milk, almonds,
         walnuts, cashews, peanuts, pine nuts, sesame seeds, chia seeds, pumpkin seeds,
         peanut butter, capers, kalamata olives, white wine, water, lemongrass, kaffir lime leaves,
         galangal, tamarind paste, nori sheets, mirin, sake, dashi, harissa, za'atar, sumac,
         pomegranate molasses, preserved lemons, saffron threads, chipotle peppers in adobo,
         queso fresco, cotija, masa harina, plantains, cassava, okra, collard greens, hominy,
         tomatillos, poblano peppers,
         crispbread, gochugaru, oatcakes, pea protein powder, coconut yogurt";
}
