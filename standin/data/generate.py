#!/usr/bin/env python3
"""Builds standin/data/recipes.json, the stand-in's recipe catalogue.

The recipes are written by hand in the recipes_*.py modules beside this script, each with its
ingredients for ONE serving; their nutrition is computed here from nutrients.py, so the numbers
come from the ingredients and kcal always equals 4·protein + 4·carbs + 9·fat.

Re-run after editing a recipe or a nutrient value (Python 3, standard library only):

    python3 standin/data/generate.py

and commit the regenerated recipes.json; the Rust build embeds that file and needs no Python.
"""

import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# The recipe modules are data; leave no __pycache__ beside them.
sys.dont_write_bytecode = True

from nutrients import FOODS, MASS, ML  # noqa: E402
import recipes_breakfast  # noqa: E402
import recipes_mains  # noqa: E402
import recipes_mains_plant  # noqa: E402
import recipes_plant_protein  # noqa: E402
import recipes_snacks  # noqa: E402
import recipes_whole_food  # noqa: E402

CUISINES = {
    "american", "british", "caribbean", "chinese", "french", "greek", "indian", "italian",
    "japanese", "korean", "mediterranean", "mexican", "middle-eastern", "moroccan", "spanish",
    "thai", "vietnamese",
}
TIMES = {"B": "breakfast", "L": "lunch", "D": "dinner", "S": "snack"}
COMPLEXITIES = {"minimal", "easy", "standard", "complex"}
COUNT_UNITS = {"piece", "slice", "clove"}


def grams(name, quantity, unit):
    """The weight of one ingredient line, from the unit and the food's unit weights."""
    f = FOODS[name]
    if unit in MASS:
        return quantity * MASS[unit]
    if unit in ML:
        return quantity * ML[unit] * f["density"]
    if unit in COUNT_UNITS:
        weight = f[unit]
        if weight is None:
            raise ValueError(f"{name} has no weight per {unit}")
        return quantity * weight
    raise ValueError(f"unknown unit {unit}")


def parse_ingredients(text):
    lines = []
    for part in text.split(","):
        words = part.split()
        name, quantity, unit = " ".join(words[:-2]), float(words[-2]), words[-1]
        if name not in FOODS:
            raise ValueError(f"unknown food {name!r}")
        lines.append((name, quantity, unit))
    return lines


def build(spec):
    title, cuisine, times, main, prep, cook, complexity, ingredients, steps = spec
    where = f"recipe {title!r}"
    assert cuisine in CUISINES, f"{where}: cuisine {cuisine}"
    assert complexity in COMPLEXITIES, f"{where}: complexity {complexity}"
    meal_times = [TIMES[c] for c in times.split()]
    lines = parse_ingredients(ingredients)
    assert any(main == n or main in n for n, _, _ in lines), f"{where}: main {main} not used"
    steps = [s.strip() for s in steps.split("|")]
    assert 2 <= len(steps) <= 6, f"{where}: {len(steps)} steps"
    p = c = f = 0.0
    for name, quantity, unit in lines:
        g = grams(name, quantity, unit)
        food = FOODS[name]
        p += food["p"] * g / 100
        c += food["c"] * g / 100
        f += food["f"] * g / 100
    kcal = 4 * p + 4 * c + 9 * f
    assert kcal >= 60, f"{where}: only {kcal:.0f} kcal"
    return {
        "title": title,
        "cuisine": cuisine,
        "meal_times": meal_times,
        "main_ingredient": main,
        "prep_minutes": prep,
        "cook_minutes": cook,
        "complexity": complexity,
        "ingredients": [
            {"name": n, "quantity": q, "unit": u} for n, q, u in lines
        ],
        "steps": steps,
        "per_serving": {
            "kcal": round(kcal, 1),
            "protein_g": round(p, 1),
            "carbs_g": round(c, 1),
            "fat_g": round(f, 1),
        },
    }


def main():
    specs = (
        recipes_breakfast.RECIPES
        + recipes_mains.RECIPES
        + recipes_mains_plant.RECIPES
        + recipes_plant_protein.RECIPES
        + recipes_whole_food.RECIPES
        + recipes_snacks.RECIPES
    )
    recipes, errors = [], []
    for spec in specs:
        try:
            recipes.append(build(spec))
        except (AssertionError, ValueError) as e:
            errors.append(f"{spec[0]}: {e}")
    if errors:
        sys.exit("\n".join(errors))
    titles = [r["title"] for r in recipes]
    duplicates = {t for t in titles if titles.count(t) > 1}
    assert not duplicates, f"duplicate titles: {duplicates}"
    out = HERE / "recipes.json"
    out.write_text(json.dumps(recipes, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(recipes)} recipes to {out}")


if __name__ == "__main__":
    main()
