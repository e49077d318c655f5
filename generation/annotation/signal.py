"""A check of the annotations: do the morphometric features carry the tumour label?"""

from __future__ import annotations

import numpy as np

from generation.annotation.annotate import AnnotationError
from generation.annotation.features import FEATURE_NAMES
from generation.models import TileAnnotation


def feature_signal(
    dataset: str, train_split: str = "train", test_split: str = "valid"
) -> tuple[float, int, int]:
    """Do the features carry signal? ROC AUC of a logistic regression for tumour vs healthy,
    fitted on the accepted tiles of `train_split` and scored on those of `test_split`.

    Returns (auc, n_train, n_test).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def split(name: str) -> tuple[np.ndarray, np.ndarray]:
        rows = TileAnnotation.objects.filter(
            tile__dataset__name=dataset, tile__split=name, quality_ok=True
        ).values_list("features", "tile__label")
        x = np.array([[f[n] for n in FEATURE_NAMES] for f, _ in rows]).reshape(
            -1, len(FEATURE_NAMES)
        )
        return x, np.array([label for _, label in rows])

    x_train, y_train = split(train_split)
    x_test, y_test = split(test_split)
    for name, y in ((train_split, y_train), (test_split, y_test)):
        if len(set(y.tolist())) < 2:
            raise AnnotationError(
                f"split {name!r} of {dataset!r} needs accepted tiles of both labels"
            )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(x_train, y_train)
    auc = roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])
    return float(auc), len(y_train), len(y_test)
