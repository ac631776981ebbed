"""Preference-learning (DPO) recipes: ``python -m recipes.dpo.<name> key=value ...`` (``cookbook run dpo/<name>``)."""
