"""The report stage: the study's findings as tables, a Markdown summary and an HTML report."""
