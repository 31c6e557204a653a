"""Pure dataset maths: filter and split specs, label aggregation, splits, canonical records.

Nothing here imports Django, so the rules that decide what a dataset version contains can be
tested and reused on their own. The services feed these functions rows read from the database.
"""
