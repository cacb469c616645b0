"""Credit scoring, free of the service: no database, no chain, no HTTP (the service calls it).

    features     Attr1..Attr64 ratios from statement amounts (pandas)
    rating       the rating's arithmetic: grades, score scale, reason codes
    impute       median imputation of the rarely-missing ratios (a pickled model step)
    scorecard    the weight-of-evidence scorecard that gives the reasons (a pickled model step)
    compiled     the gradient-boosted trees flattened into numpy for small batches
    model        CreditModel: a trained model that rates SMEs
    metrics      validation metrics: AUC, Gini, KS, Brier, calibration, bad rate by grade
    training     the reproducible training recipe and its cross-validation
    dataset      labelled CSVs for training and evaluation
    artefact     a model on disk (model.joblib + metadata.json), bound by its SHA-256
    drift        population stability of features between two samples
    synthetic    synthetic ratio data and statements with a known risk structure

Nothing is imported here, so naming one module (e.g. `scoring.rating` from the API schemas)
loads neither scikit-learn nor pandas.
"""
