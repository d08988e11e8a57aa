"""The benchmark's datasets: public classification tables that ship inside PyPI wheels.

Each loader reads a file installed with its package (no download at run time) and returns one
table: the feature columns and the target column, labels as text. The packages live in the
benchmark's own environment (`requirements.txt` beside this file); scikit-learn's digits also
load in the project's. This module imports only pandas at the top, so it imports in both.

| name            | package, file in the wheel                         | rows  | classes | features                          | licence / source                                  |
|-----------------|----------------------------------------------------|-------|---------|-----------------------------------|---------------------------------------------------|
| penguins        | palmerpenguins 0.1.6, data/penguins.csv            | 344   | 3       | 5 numeric, 2 categorical; missing | CC0 (Gorman, Williams & Fraser 2014, Palmer LTER) |
| cars-origin     | vega_datasets 0.9.0, _data/cars.json               | 406   | 3       | 7 numeric; missing MPG/horsepower | StatLib auto-mpg (Quinlan 1993), public           |
| anes96          | statsmodels 0.15.0, datasets/anes96/anes96.csv     | 944   | 2       | 7 numeric, 2 categorical          | ANES 1996, in statsmodels with permission         |
| seattle-weather | vega_datasets 0.9.0, _data/seattle-weather.csv     | 1,461 | 5       | 6 numeric (month, year from date) | NOAA GHCN daily, public domain                    |
| digits          | scikit-learn 1.9.1, datasets/data/digits.csv.gz    | 1,797 | 10      | 64 numeric                        | UCI optdigits (Alpaydin & Kaynak), CC BY 4.0      |
| fair            | statsmodels 0.15.0, datasets/fair/fair.csv         | 5,000 | 2       | 6 numeric, 2 categorical          | Fair (1978) affairs survey, in statsmodels with permission; a seeded stratified sample of its 6,366 rows |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

# fair has 6,366 rows; the benchmark's range is 200-5,000, so a seeded stratified sample.
FAIR_ROWS = 5000
SAMPLE_SEED = 20240917


@dataclass(frozen=True)
class DatasetSpec:
    """What both sides are told about a dataset: its target, and which columns are categories
    (codes stored as numbers, such as party identification, are categories, not quantities)."""

    name: str
    target: str
    categorical: tuple[str, ...] = ()
    positive_class: str | None = None


def _penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins()


def _cars() -> pd.DataFrame:
    from vega_datasets import local_data

    frame = local_data.cars()
    # Name is free text (one value per car); Year is the model year as a date.
    frame["Model_year"] = pd.to_datetime(frame["Year"]).dt.year
    return frame.drop(columns=["Name", "Year"])


def _seattle_weather() -> pd.DataFrame:
    from vega_datasets import local_data

    frame = local_data.seattle_weather()
    dates = pd.to_datetime(frame["date"])
    frame["month"] = dates.dt.month
    frame["year"] = dates.dt.year
    return frame.drop(columns=["date"])


def _anes96() -> pd.DataFrame:
    from statsmodels.datasets import anes96

    frame = anes96.load_pandas().data.drop(columns=["logpopul"])  # log of popul: a duplicate
    frame["vote"] = frame["vote"].map({0.0: "clinton", 1.0: "dole"})
    for column in ("PID", "educ"):
        frame[column] = frame[column].astype(int)
    return frame


def _fair() -> pd.DataFrame:
    from statsmodels.datasets import fair

    frame = fair.load_pandas().data
    frame["affair"] = (frame.pop("affairs") > 0).map({True: "yes", False: "no"})
    for column in ("occupation", "occupation_husb"):
        frame[column] = frame[column].astype(int)
    # Stratified by the label: the same share of "yes" as the whole survey.
    sampled = frame.groupby("affair", group_keys=False).sample(
        frac=FAIR_ROWS / len(frame), random_state=SAMPLE_SEED
    )
    return sampled.sort_index().reset_index(drop=True)


def _digits() -> pd.DataFrame:
    from sklearn.datasets import load_digits

    bunch = load_digits(as_frame=True)
    frame = bunch.frame.rename(columns={"target": "digit"})
    frame["digit"] = frame["digit"].map(lambda d: f"d{d}")
    return frame


LOADERS: dict[str, tuple[DatasetSpec, Callable[[], pd.DataFrame]]] = {
    "penguins": (DatasetSpec("penguins", "species", ("island", "sex")), _penguins),
    "cars-origin": (DatasetSpec("cars-origin", "Origin"), _cars),
    "anes96": (DatasetSpec("anes96", "vote", ("PID", "educ"), "dole"), _anes96),
    "seattle-weather": (DatasetSpec("seattle-weather", "weather"), _seattle_weather),
    "digits": (DatasetSpec("digits", "digit"), _digits),
    "fair": (DatasetSpec("fair", "affair", ("occupation", "occupation_husb"), "yes"), _fair),
}
DATASET_NAMES = tuple(LOADERS)
# The smoke run's pair: one multiclass with categories and gaps, one binary; both small.
QUICK_DATASETS = ("penguins", "anes96")


def spec(name: str) -> DatasetSpec:
    if name not in LOADERS:
        raise KeyError(f"unknown benchmark dataset '{name}' (known: {', '.join(DATASET_NAMES)})")
    return LOADERS[name][0]


def load(name: str) -> pd.DataFrame:
    """The dataset's table with the target's labels as text."""
    chosen, loader = LOADERS[spec(name).name]
    frame = loader()
    frame[chosen.target] = frame[chosen.target].astype(str)
    return frame.reset_index(drop=True)


def main(argv: list[str] | None = None) -> None:
    """`python -m tuning_quality.datasets NAME OUT.csv` in the benchmark's environment."""
    import sys

    name, out = (argv if argv is not None else sys.argv[1:])[:2]
    load(name).to_csv(out, index=False)


if __name__ == "__main__":
    main()
