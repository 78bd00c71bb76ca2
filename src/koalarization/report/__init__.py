"""Everything the study writes for people to read: tables (CSV + Markdown), figures (PNG + PDF) and the
report page `results/<profile>/index.html`. The evaluation, the notebooks and the survey all write through here."""
