"""Credit-card fraud detection: the domain package.

Plain Python (pandas, numpy, scikit-learn, LightGBM, ...) with no ZenML import, so that every
function here can be used and tested on its own; the ZenML steps in ``steps/`` wrap it.
"""
