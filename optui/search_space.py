"""Search-space parsing (to be completed)."""


def parse_search_section(raw, file, budget):
    return dict(raw or {})
