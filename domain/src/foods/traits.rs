//! What an ingredient is made of, as diets, restrictions and disliked food groups care: which
//! foods break a vegan diet or a gluten-free restriction, and why ("contains dairy"). Each food's
//! traits come from the food table; words in a name such as "gluten-free" or "vegan" clear what
//! they deny.

use super::reading::{Parsed, foods_in};
use super::table::Role;
use crate::vocabulary::{DietType, Restriction};

/// What an ingredient is made of, as far as diets, restrictions and disliked foods care.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FoodTraits {
    /// Red meat and pork.
    pub meat: bool,
    pub poultry: bool,
    pub fish: bool,
    /// Crustaceans and molluscs.
    pub shellfish: bool,
    pub egg: bool,
    pub dairy: bool,
    pub honey: bool,
    /// Animal products that are not flesh, eggs, dairy or honey: gelatin, lard, suet, collagen.
    pub other_animal: bool,
    pub gluten: bool,
    pub tree_nut: bool,
    pub peanut: bool,
    pub soy: bool,
    pub grain: bool,
    pub legume: bool,
    /// Potato, corn, rice, cassava and other starchy staples.
    pub starchy: bool,
    pub added_sugar: bool,
    /// Salt, soy sauce, bouillon, cured meats, brined foods.
    pub high_sodium: bool,
}

/// What an ingredient is made of. Words such as "gluten-free", "vegan" or "unsalted" in the name
/// clear what they deny.
pub fn traits(ingredient_name: &str) -> FoodTraits {
    FoodTraits::from_bits(bits(&Parsed::new(ingredient_name)))
}

/// Why an ingredient breaks a diet ("contains meat"), or `None` when it fits.
pub fn diet_conflict(diet: DietType, ingredient_name: &str) -> Option<&'static str> {
    let forbidden = match diet {
        DietType::Omnivore => return None,
        DietType::Vegetarian => FLESH,
        DietType::Vegan => ANIMAL,
        // Lard, gelatin and suet come from land animals, which a pescatarian does not eat.
        DietType::Pescatarian => MEAT | POULTRY | OTHER_ANIMAL,
        DietType::Keto => GRAIN | STARCHY | ADDED_SUGAR | LEGUME,
        DietType::Paleo => GRAIN | LEGUME | DAIRY | ADDED_SUGAR | SOY,
    };
    reason(bits(&Parsed::new(ingredient_name)) & forbidden)
}

/// Why an ingredient breaks a restriction ("contains gluten"), or `None` when it fits.
pub fn restriction_conflict(r: Restriction, ingredient_name: &str) -> Option<&'static str> {
    let forbidden = match r {
        Restriction::GlutenFree => GLUTEN,
        Restriction::DairyFree => DAIRY,
        Restriction::NutFree => TREE_NUT | PEANUT,
        Restriction::EggFree => EGG,
        Restriction::SoyFree => SOY,
        Restriction::ShellfishFree => SHELLFISH,
        Restriction::LowSodium => HIGH_SODIUM,
    };
    reason(bits(&Parsed::new(ingredient_name)) & forbidden)
}

// Traits are bits internally so that tables, markers and diets combine them with `|` and `&`.
pub(super) const MEAT: u32 = 1;
pub(super) const POULTRY: u32 = 1 << 1;
pub(super) const FISH: u32 = 1 << 2;
pub(super) const SHELLFISH: u32 = 1 << 3;
pub(super) const EGG: u32 = 1 << 4;
pub(super) const DAIRY: u32 = 1 << 5;
pub(super) const HONEY: u32 = 1 << 6;
pub(super) const OTHER_ANIMAL: u32 = 1 << 7;
pub(super) const GLUTEN: u32 = 1 << 8;
pub(super) const TREE_NUT: u32 = 1 << 9;
pub(super) const PEANUT: u32 = 1 << 10;
pub(super) const SOY: u32 = 1 << 11;
pub(super) const GRAIN: u32 = 1 << 12;
pub(super) const LEGUME: u32 = 1 << 13;
pub(super) const STARCHY: u32 = 1 << 14;
pub(super) const ADDED_SUGAR: u32 = 1 << 15;
pub(super) const HIGH_SODIUM: u32 = 1 << 16;

pub(super) const FLESH: u32 = MEAT | POULTRY | FISH | SHELLFISH | OTHER_ANIMAL;
pub(super) const ANIMAL: u32 = FLESH | EGG | DAIRY | HONEY;

/// Each trait's tag in the tables and the reason given when it breaks a diet or restriction;
/// the first listed wins when several do.
pub(super) const TRAITS: [(&str, u32, &str); 17] = [
    ("meat", MEAT, "contains meat"),
    ("poultry", POULTRY, "contains poultry"),
    ("fish", FISH, "contains fish"),
    ("shellfish", SHELLFISH, "contains shellfish"),
    ("animal", OTHER_ANIMAL, "contains an animal product"),
    ("egg", EGG, "contains egg"),
    ("dairy", DAIRY, "contains dairy"),
    ("honey", HONEY, "contains honey"),
    ("gluten", GLUTEN, "contains gluten"),
    ("treenut", TREE_NUT, "contains tree nuts"),
    ("peanut", PEANUT, "contains peanuts"),
    ("soy", SOY, "contains soy"),
    ("grain", GRAIN, "contains grain"),
    ("legume", LEGUME, "contains legumes"),
    ("starchy", STARCHY, "is a starchy food"),
    ("sugar", ADDED_SUGAR, "contains added sugar"),
    ("salty", HIGH_SODIUM, "is high in sodium"),
];

fn reason(bits: u32) -> Option<&'static str> {
    TRAITS
        .iter()
        .find(|(_, bit, _)| bits & bit != 0)
        .map(|(_, _, why)| *why)
}

impl FoodTraits {
    fn from_bits(bits: u32) -> FoodTraits {
        let has = |bit: u32| bits & bit != 0;
        FoodTraits {
            meat: has(MEAT),
            poultry: has(POULTRY),
            fish: has(FISH),
            shellfish: has(SHELLFISH),
            egg: has(EGG),
            dairy: has(DAIRY),
            honey: has(HONEY),
            other_animal: has(OTHER_ANIMAL),
            gluten: has(GLUTEN),
            tree_nut: has(TREE_NUT),
            peanut: has(PEANUT),
            soy: has(SOY),
            grain: has(GRAIN),
            legume: has(LEGUME),
            starchy: has(STARCHY),
            added_sugar: has(ADDED_SUGAR),
            high_sodium: has(HIGH_SODIUM),
        }
    }
}

/// Words in a name that deny a trait ("gluten-free bread", "vegan mayonnaise").
const MARKERS: &[(&[&str], u32)] = &[
    (&["gluten", "free"], GLUTEN),
    (&["dairy", "free"], DAIRY),
    (&["non", "dairy"], DAIRY),
    (&["egg", "free"], EGG),
    (&["eggless"], EGG),
    (&["nut", "free"], TREE_NUT | PEANUT),
    (&["peanut", "free"], PEANUT),
    (&["soy", "free"], SOY),
    (&["sugar", "free"], ADDED_SUGAR),
    (&["unsweetened"], ADDED_SUGAR),
    (&["no", "sugar", "added"], ADDED_SUGAR),
    (&["no", "added", "sugar"], ADDED_SUGAR),
    (&["unsalted"], HIGH_SODIUM),
    (&["salt", "free"], HIGH_SODIUM),
    (&["sodium", "free"], HIGH_SODIUM),
    (&["low", "sodium"], HIGH_SODIUM),
    (&["reduced", "sodium"], HIGH_SODIUM),
    (&["low", "salt"], HIGH_SODIUM),
    (&["no", "salt", "added"], HIGH_SODIUM),
    (&["vegan"], ANIMAL),
    (&["plant", "based"], ANIMAL),
    (&["vegetarian"], FLESH),
    (&["meatless"], MEAT | POULTRY),
    (&["meat", "free"], MEAT | POULTRY),
];

/// The trait bits of a name: those of the foods it names and of its modifiers, less those its
/// words deny ("gluten free", "vegan").
pub(super) fn bits(parsed: &Parsed) -> u32 {
    let modifiers = parsed
        .spans
        .iter()
        .filter_map(|s| s.entry)
        .filter(|e| e.role == Role::Modifier);
    let bits = foods_in(&parsed.spans)
        .into_iter()
        .chain(modifiers)
        .fold(0, |bits, e| bits | e.bits);
    MARKERS
        .iter()
        .filter(|(phrase, _)| parsed.contains(phrase))
        .fold(bits, |bits, (_, denied)| bits & !denied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gluten_is_found_unless_the_name_says_gluten_free() {
        for name in [
            "all-purpose flour",
            "whole wheat bread",
            "spaghetti",
            "couscous",
            "bulgur wheat",
            "pearl barley",
            "rye bread",
            "soy sauce",
            "panko breadcrumbs",
            "flour tortillas",
            "egg noodles",
            "udon noodles",
            "seitan",
            "semolina",
            "farro",
            "rolled oats",
            "pita bread",
            "beer",
            "malt vinegar",
        ] {
            assert!(traits(name).gluten, "{name}");
        }
        for name in [
            "gluten-free pasta",
            "tamari",
            "rice noodles",
            "corn tortillas",
            "rice flour",
            "almond flour",
            "quinoa",
            "buckwheat",
            "gluten-free rolled oats",
            "chickpea flour",
            "glutinous rice",
            "cornstarch",
            "potatoes",
            "gluten free soy sauce",
        ] {
            assert!(!traits(name).gluten, "{name}");
        }
        assert!(
            traits("gluten-free bread").grain,
            "gluten-free bread is still grain"
        );
    }

    #[test]
    fn dairy_is_found_but_plant_milks_and_nut_butters_are_not_dairy() {
        for name in [
            "whole milk",
            "unsalted butter",
            "heavy cream",
            "greek yogurt",
            "ghee",
            "whey",
            "parmesan",
            "feta",
            "mozzarella",
            "cheddar cheese",
            "ricotta",
            "halloumi",
            "paneer",
            "buttermilk",
            "sour cream",
            "cream cheese",
            "garlic butter",
        ] {
            assert!(traits(name).dairy, "{name}");
        }
        for name in [
            "coconut milk",
            "almond milk",
            "oat milk",
            "soy milk",
            "peanut butter",
            "almond butter",
            "cocoa butter",
            "cream of tartar",
            "butternut squash",
            "butter beans",
            "coconut cream",
            "dairy-free cheese",
            "vegan butter",
            "nutritional yeast",
            "coconut yogurt",
            "soy yogurt",
        ] {
            assert!(!traits(name).dairy, "{name}");
        }
    }

    #[test]
    fn traits_cover_the_categories() {
        let t = traits("bacon");
        assert!(t.meat && t.high_sodium && !t.poultry);
        assert!(traits("chicken thighs").poultry);
        assert!(traits("smoked salmon").fish);
        assert!(traits("fish sauce").fish, "fish sauce counts as fish");
        assert!(
            traits("Worcestershire sauce").fish,
            "it is made with anchovies"
        );
        assert!(traits("king prawns").shellfish);
        assert!(traits("oyster sauce").shellfish);
        assert!(traits("mayonnaise").egg);
        assert!(!traits("eggplant").egg);
        assert!(traits("honey").honey && traits("honey").added_sugar);
        assert!(traits("gelatin").other_animal);
        assert!(traits("lard").other_animal);
        assert!(traits("cashews").tree_nut);
        let macadamia = traits("macadamia nuts");
        assert!(
            macadamia.tree_nut && !macadamia.peanut,
            "a named nut is not a peanut"
        );
        assert!(traits("mixed nuts").peanut, "mixed nuts may hold peanuts");
        assert!(traits("peanuts").peanut && traits("peanuts").legume);
        assert!(traits("firm tofu").soy);
        assert!(traits("edamame").soy && traits("edamame").legume);
        assert!(traits("brown rice").grain && traits("brown rice").starchy);
        assert!(traits("quinoa").grain);
        assert!(traits("red lentils").legume);
        assert!(traits("black beans").legume);
        assert!(!traits("green beans").legume);
        assert!(traits("sweet potato").starchy);
        assert!(traits("maple syrup").added_sugar);
        assert!(!traits("sugar snap peas").added_sugar);
        assert!(traits("kosher salt").high_sodium);
        assert!(traits("chicken bouillon").high_sodium && traits("chicken bouillon").poultry);
        assert!(!traits("low-sodium chicken broth").high_sodium);
        assert!(
            !traits("olive oil").high_sodium,
            "olives are brined, their oil is not"
        );
        assert!(traits("kalamata olives").high_sodium);
        assert_eq!(traits("broccoli"), FoodTraits::default());
        assert_eq!(traits("something unheard of"), FoodTraits::default());
    }

    #[test]
    fn a_cut_yields_to_the_food_it_is_cut_from() {
        assert!(traits("steak").meat);
        assert!(!traits("tuna steak").meat && traits("tuna steak").fish);
        assert!(!traits("cauliflower steak").meat);
        assert!(!traits("vegetable sausage").meat);
        assert!(traits("turkey bacon").poultry && !traits("turkey bacon").meat);
        assert!(!traits("crab meat").meat && traits("crab meat").shellfish);
    }

    #[test]
    fn diets_reject_what_they_exclude() {
        use DietType::*;
        assert_eq!(diet_conflict(Vegetarian, "bacon"), Some("contains meat"));
        assert_eq!(
            diet_conflict(Vegetarian, "chicken stock"),
            Some("contains poultry")
        );
        assert_eq!(
            diet_conflict(Vegetarian, "fish sauce"),
            Some("contains fish")
        );
        assert_eq!(
            diet_conflict(Vegetarian, "gelatin"),
            Some("contains an animal product")
        );
        for fine in [
            "eggs",
            "feta",
            "honey",
            "vegetarian worcestershire sauce",
            "tofu",
        ] {
            assert_eq!(diet_conflict(Vegetarian, fine), None, "{fine}");
        }
        assert_eq!(diet_conflict(Vegan, "eggs"), Some("contains egg"));
        assert_eq!(diet_conflict(Vegan, "butter"), Some("contains dairy"));
        assert_eq!(diet_conflict(Vegan, "honey"), Some("contains honey"));
        assert_eq!(diet_conflict(Vegan, "vegan mayonnaise"), None);
        assert_eq!(diet_conflict(Vegan, "coconut milk"), None);
        assert_eq!(diet_conflict(Pescatarian, "prawns"), None);
        assert_eq!(
            diet_conflict(Pescatarian, "turkey"),
            Some("contains poultry")
        );
        assert_eq!(
            diet_conflict(Pescatarian, "lard"),
            Some("contains an animal product")
        );
        assert_eq!(diet_conflict(Keto, "white rice"), Some("contains grain"));
        assert_eq!(diet_conflict(Keto, "potatoes"), Some("is a starchy food"));
        assert_eq!(
            diet_conflict(Keto, "brown sugar"),
            Some("contains added sugar")
        );
        assert_eq!(diet_conflict(Keto, "chickpeas"), Some("contains legumes"));
        assert_eq!(diet_conflict(Keto, "cauliflower rice"), None);
        assert_eq!(diet_conflict(Keto, "tofu"), None);
        assert_eq!(diet_conflict(Paleo, "cheddar"), Some("contains dairy"));
        assert_eq!(diet_conflict(Paleo, "tempeh"), Some("contains soy"));
        assert_eq!(diet_conflict(Paleo, "peanuts"), Some("contains legumes"));
        assert_eq!(diet_conflict(Paleo, "sweet potato"), None);
        assert_eq!(diet_conflict(Omnivore, "bacon"), None);
    }

    #[test]
    fn restrictions_reject_what_they_exclude() {
        use Restriction::*;
        assert_eq!(
            restriction_conflict(GlutenFree, "soy sauce"),
            Some("contains gluten")
        );
        assert_eq!(restriction_conflict(GlutenFree, "tamari"), None);
        assert_eq!(
            restriction_conflict(DairyFree, "ghee"),
            Some("contains dairy")
        );
        assert_eq!(restriction_conflict(DairyFree, "oat milk"), None);
        assert_eq!(
            restriction_conflict(NutFree, "almond flour"),
            Some("contains tree nuts")
        );
        assert_eq!(
            restriction_conflict(NutFree, "peanut butter"),
            Some("contains peanuts")
        );
        assert_eq!(restriction_conflict(NutFree, "nutmeg"), None);
        assert_eq!(restriction_conflict(NutFree, "coconut"), None);
        assert_eq!(
            restriction_conflict(EggFree, "egg noodles"),
            Some("contains egg")
        );
        assert_eq!(
            restriction_conflict(SoyFree, "edamame"),
            Some("contains soy")
        );
        assert_eq!(
            restriction_conflict(ShellfishFree, "shrimp paste"),
            Some("contains shellfish")
        );
        assert_eq!(restriction_conflict(ShellfishFree, "salmon"), None);
        assert_eq!(
            restriction_conflict(LowSodium, "feta"),
            Some("is high in sodium")
        );
        assert_eq!(
            restriction_conflict(LowSodium, "reduced-sodium soy sauce"),
            None
        );
    }
}
