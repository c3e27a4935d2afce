"""The results report: ``build/report/index.html`` from the executed notebooks.

``make report`` (``python -m babel.report``) reads one parameter set's executed notebooks
(``build/executed/<params>/``) and the values they recorded, and writes a folder that opens
anywhere (relative links only, every file inside it):

- ``index.html``: the paper's claims with this run's figure, a verdict by a stated rule and
  links to the figure and the notebook section (:mod:`babel.report.claims`); the README's
  results text (:mod:`babel.results`); the figure gallery, captioned by the notebooks' own
  words (:mod:`babel.report.gallery`); the heatmap explorer without a kernel
  (:mod:`babel.report.explorer`); the executed notebooks; the run's provenance (``run.json``);
- ``figures/``: copies of the run's figures;
- ``explorer/``: per language, its frequency heatmap and its difference from the mean;
- ``notebooks/``: every executed notebook as HTML (nbconvert).
"""

from babel.report.build import INDEX, REPORT_DIR, build_report
from babel.report.claims import CLAIMS

__all__ = ["CLAIMS", "INDEX", "REPORT_DIR", "build_report"]
