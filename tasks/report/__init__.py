"""The data-quality report (pure: no Prefect).

- `history`: what each run records for the report, one small JSON file per run under
  `<data>/_reports/runs/`, and the pages kept there;
- `figures`: every number and series of the report, from the datasets (polars lazy scans of
  only the columns each figure needs) and the runs' records;
- `charts`: the figures drawn as SVG (matplotlib, deterministic bytes);
- `page`: one self-contained HTML page, the headline rows and the markdown the Prefect
  artifacts show.

flows/report.py calls them after a run and for `newsflow report`.
"""
