"""Pure computation from raw counts to a person's own zones; profile files."""
