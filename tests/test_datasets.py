"""Data sets: shapes (examples as columns), labels, generators, the dev split, scaling and CSV errors."""

import io
import math

import numpy as np
import pytest

from babysit.config import DataConfig
from babysit.datasets import SYNTHETIC, load_dataset, read_csv, split_and_scale
from babysit.errors import DataError

N_CLASSES = {"moons": 2, "circles": 2, "xor": 2, "spiral": 3, "blobs": 3}


def load(seed=0, **data):
    """The Dataset that a resolved DataConfig built from ``data`` describes, drawn with ``seed``."""
    return load_dataset(DataConfig.from_dict(data), np.random.default_rng(seed))


def raw(name, n_samples=None, **settings):
    """A synthetic set with no dev split and no scaling: all points as drawn, examples as columns."""
    data = {"name": name, "dev_fraction": 0, "standardize": False, **settings}
    if n_samples is not None:
        data["n_samples"] = n_samples
    ds = load(**data)
    return ds.X_train, ds.y_train


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def csv_error(tmp_path, text, target="label"):
    """The message of the DataError that reading ``text`` as a CSV raises."""
    path = write(tmp_path, text)
    with pytest.raises(DataError) as info:
        read_csv(path, target)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "Traceback" not in message
    return message


class TestSynthetic:
    @pytest.mark.parametrize("name", sorted(SYNTHETIC))
    def test_shapes_examples_as_columns(self, name):
        """X_train is (2, m_train) and X_dev (2, m_dev); labels are 1-D of matching length."""
        ds = load(name=name, n_samples=200, dev_fraction=0.25)
        assert ds.X_train.shape == (2, 150) and ds.X_dev.shape == (2, 50)
        assert ds.y_train.shape == (150,) and ds.y_dev.shape == (50,)
        assert ds.n_features == 2
        assert ds.X_train.dtype == np.float64
        assert ds.X_train.flags["C_CONTIGUOUS"] and ds.X_dev.flags["C_CONTIGUOUS"]

    @pytest.mark.parametrize("name", sorted(SYNTHETIC))
    def test_labels_zero_to_c_minus_one(self, name):
        """Labels are the integers 0 … C-1, every class present, and classes says so."""
        ds = load(name=name, n_samples=300)
        labels = np.concatenate([ds.y_train, ds.y_dev])
        C = N_CLASSES[name]
        assert np.issubdtype(labels.dtype, np.integer)
        assert set(labels.tolist()) == set(range(C))
        assert ds.n_classes == C and ds.classes == tuple(range(C))
        assert ds.feature_names == ("x1", "x2")

    @pytest.mark.parametrize("name", ["spiral", "blobs"])
    @pytest.mark.parametrize("n_classes", [2, 5])
    def test_n_classes_honoured(self, name, n_classes):
        """spiral and blobs draw as many classes as asked, split evenly."""
        X, y = raw(name, n_samples=103, n_classes=n_classes)
        counts = np.bincount(y)
        assert len(counts) == n_classes
        assert counts.max() - counts.min() <= 1

    @pytest.mark.parametrize("name", sorted(SYNTHETIC))
    @pytest.mark.parametrize("n_samples", [7, 101])
    def test_n_samples_honoured(self, name, n_samples):
        """Train and dev together hold exactly n_samples examples."""
        ds = load(name=name, n_samples=n_samples)
        assert ds.X_train.shape[1] + ds.X_dev.shape[1] == n_samples

    @pytest.mark.parametrize("name", ["moons", "circles"])
    def test_two_classes_balanced(self, name):
        """The two classes get n/2 examples each (the odd one to class 0)."""
        _, y = raw(name, n_samples=101)
        assert np.bincount(y).tolist() == [51, 50]

    @pytest.mark.parametrize("name", sorted(SYNTHETIC))
    def test_same_seed_same_data(self, name):
        """The same generator seed gives the same points, split and labels."""
        a, b = load(seed=3, name=name, n_samples=100), load(seed=3, name=name, n_samples=100)
        assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.X_dev, b.X_dev)
        assert np.array_equal(a.y_train, b.y_train) and np.array_equal(a.y_dev, b.y_dev)

    @pytest.mark.parametrize("name", sorted(SYNTHETIC))
    def test_other_seed_other_data(self, name):
        """Another seed gives other points."""
        a, b = load(seed=3, name=name, n_samples=100), load(seed=4, name=name, n_samples=100)
        assert not np.array_equal(a.X_train, b.X_train)


class TestNoise:
    def test_moons_noise_zero_on_unit_half_circles(self):
        """Without noise, class 0 lies on the upper unit half circle, class 1 on the lower one around (1, 0.5)."""
        X, y = raw("moons", n_samples=200, noise=0)
        outer, inner = X[:, y == 0], X[:, y == 1]
        assert np.allclose(np.hypot(outer[0], outer[1]), 1.0, atol=1e-12)
        assert (outer[1] >= 0).all()
        assert np.allclose(np.hypot(inner[0] - 1, inner[1] - 0.5), 1.0, atol=1e-12)
        assert (inner[1] <= 0.5).all()

    def test_moons_noise_moves_points_off_the_circles(self):
        """With noise 0.2 the distance to the circle spreads by about 0.2."""
        X, y = raw("moons", n_samples=2000, noise=0.2)
        outer = X[:, y == 0]
        spread = np.hypot(outer[0], outer[1]) - 1
        assert 0.1 < spread.std() < 0.3

    def test_circles_noise_zero_radii(self):
        """Without noise, class 0 lies on radius 1 and class 1 on radius 0.5."""
        X, y = raw("circles", n_samples=100, noise=0)
        r = np.hypot(X[0], X[1])
        assert np.allclose(r[y == 0], 1.0) and np.allclose(r[y == 1], 0.5)

    def test_xor_noise_zero_labels(self):
        """Without noise the label is exactly whether x and y share a sign, inside [-1, 1]²."""
        X, y = raw("xor", n_samples=300, noise=0)
        assert np.array_equal(y, (X[0] * X[1] > 0).astype(int))
        assert np.abs(X).max() <= 1

    def test_blobs_noise_zero_at_centres(self):
        """Without noise every point sits on its class's centre, radius 3 at angle 2πk/C."""
        X, y = raw("blobs", n_samples=40, noise=0, n_classes=4)
        for k in range(4):
            centre = 3 * np.array([math.cos(2 * math.pi * k / 4), math.sin(2 * math.pi * k / 4)])
            assert np.allclose(X[:, y == k], centre[:, None])

    def test_blobs_noise_is_standard_deviation(self):
        """Blob points scatter around the centre with standard deviation ``noise``."""
        X, y = raw("blobs", n_samples=3000, noise=0.5, n_classes=3)
        assert np.std(X[0, y == 0] - 3) == pytest.approx(0.5, rel=0.1)

    def test_spiral_noise_zero_radius_grows(self):
        """Without noise each arm's radii run evenly from 0 to 1 (in shuffled order)."""
        X, y = raw("spiral", n_samples=30, noise=0, n_classes=3)
        for k in range(3):
            assert np.allclose(np.sort(np.hypot(*X[:, y == k])), np.linspace(0, 1, 10))


class TestBundled:
    @pytest.mark.parametrize(
        "name, n_features, n_classes, m",
        [("digits", 64, 10, 1797), ("breast_cancer", 30, 2, 569), ("wine", 13, 3, 178)],
    )
    def test_shape_and_classes(self, name, n_features, n_classes, m):
        """The sets scikit-learn ships: features as rows, all examples accounted for, labels 0 … C-1."""
        ds = load(name=name)
        assert ds.X_train.shape[0] == ds.X_dev.shape[0] == n_features == ds.n_features
        assert ds.X_train.shape[1] + ds.X_dev.shape[1] == m
        assert ds.X_dev.shape[1] == round(0.2 * m)
        assert ds.n_classes == n_classes
        assert set(np.concatenate([ds.y_train, ds.y_dev]).tolist()) == set(range(n_classes))
        assert len(ds.feature_names) == n_features
        assert all(isinstance(c, str) for c in ds.classes)

    def test_digits_classes_are_digits(self):
        """Digits' classes are '0' … '9'."""
        assert load(name="digits").classes == tuple(str(i) for i in range(10))

    def test_bundled_split_is_seeded(self):
        """The bundled data is fixed, but the dev split follows the seed."""
        a, b, c = load(seed=1, name="wine"), load(seed=1, name="wine"), load(seed=2, name="wine")
        assert np.array_equal(a.X_train, b.X_train)
        assert not np.array_equal(a.y_train, c.y_train)


class TestDevSplit:
    def test_no_dev_set(self):
        """dev_fraction=0 keeps every example for training and leaves an empty (2, 0) dev set."""
        ds = load(name="moons", n_samples=100, dev_fraction=0)
        assert ds.X_train.shape == (2, 100)
        assert ds.X_dev.shape == (2, 0) and ds.y_dev.shape == (0,)

    @pytest.mark.parametrize("n, fraction, n_dev", [(1000, 0.25, 250), (101, 0.25, 25), (100, 0.2, 20)])
    def test_fraction(self, n, fraction, n_dev):
        """The dev set holds round(n · dev_fraction) examples."""
        ds = load(name="moons", n_samples=n, dev_fraction=fraction)
        assert ds.X_dev.shape[1] == n_dev and ds.X_train.shape[1] == n - n_dev

    def test_tiny_fraction_gives_one(self):
        """A positive fraction that rounds to nothing still holds one example out."""
        ds = load(name="moons", n_samples=100, dev_fraction=0.001)
        assert ds.X_dev.shape[1] == 1

    def test_split_is_a_partition(self):
        """Train and dev together are exactly the points drawn, none twice."""
        X, _ = raw("moons", n_samples=200)
        ds = load(name="moons", n_samples=200, dev_fraction=0.3, standardize=False)
        both = np.concatenate([ds.X_train, ds.X_dev], axis=1)
        assert both.shape == X.shape
        key = lambda A: sorted(map(tuple, A.T.tolist()))  # noqa: E731
        assert key(both) == key(X)

    def test_split_shuffles(self):
        """The dev set is not simply the first or last examples (which would be one class)."""
        ds = load(name="moons", n_samples=200, dev_fraction=0.25)
        assert set(ds.y_dev.tolist()) == {0, 1}

    def test_split_is_seeded(self):
        """The same rng splits alike; another splits differently."""
        X = np.arange(40.0).reshape(20, 2)
        y = np.arange(20) % 2

        def split(seed):
            return split_and_scale("t", X, y, (0, 1), ("a", "b"), np.random.default_rng(seed), 0.25, False)

        a, b, c = split(0), split(0), split(1)
        assert np.array_equal(a.X_dev, b.X_dev) and np.array_equal(a.y_train, b.y_train)
        assert not np.array_equal(a.X_dev, c.X_dev)
        assert a.X_dev.shape == (2, 5)

    def test_no_room_for_training(self):
        """A split that leaves no training example is a DataError."""
        X, y = np.zeros((1, 2)), np.zeros(1, int)
        with pytest.raises(DataError, match="leave none for training"):
            split_and_scale("t", X, y, (0,), ("a", "b"), np.random.default_rng(0), 0.5, False)


class TestStandardize:
    def test_train_zero_mean_unit_std(self):
        """Each training feature has mean ≈ 0 and std ≈ 1."""
        ds = load(name="wine")
        assert np.allclose(ds.X_train.mean(axis=1), 0, atol=1e-12)
        assert np.allclose(ds.X_train.std(axis=1), 1, atol=1e-12)

    def test_dev_uses_train_statistics(self):
        """Dev features are transformed with the TRAIN mean and std, checked by hand."""
        plain = load(seed=5, name="moons", n_samples=400, dev_fraction=0.25, standardize=False)
        scaled = load(seed=5, name="moons", n_samples=400, dev_fraction=0.25)
        mean = plain.X_train.mean(axis=1, keepdims=True)
        std = plain.X_train.std(axis=1, keepdims=True)
        assert np.allclose(scaled.X_dev, (plain.X_dev - mean) / std, rtol=0, atol=1e-12)
        assert np.allclose(scaled.X_train, (plain.X_train - mean) / std, rtol=0, atol=1e-12)
        assert np.allclose(scaled.mean, mean) and np.allclose(scaled.std, std)
        assert scaled.mean.shape == (2, 1) and scaled.std.shape == (2, 1)
        # statistics fitted on the dev set itself would give something else
        own = (plain.X_dev - plain.X_dev.mean(axis=1, keepdims=True)) / plain.X_dev.std(axis=1, keepdims=True)
        assert not np.allclose(scaled.X_dev, own, atol=1e-6)

    def test_off_keeps_raw_values(self):
        """standardize=False leaves the values as drawn and records no statistics."""
        ds = load(name="moons", n_samples=50, standardize=False)
        assert ds.mean is None and ds.std is None
        assert ds.X_train.min() < -0.2  # moons span about [-1, 2] × [-0.5, 1]

    @pytest.mark.parametrize("value", [0.0, 0.1, 7.3])
    def test_constant_feature(self, value):
        """A constant feature gives no NaN or inf and stays constant; its std is taken as 1."""
        rng = np.random.default_rng(0)
        X = np.column_stack([rng.standard_normal(50), np.full(50, value)])
        ds = split_and_scale("t", X, np.arange(50) % 2, (0, 1), ("a", "b"), rng, 0.2, True)
        assert np.isfinite(ds.X_train).all() and np.isfinite(ds.X_dev).all()
        assert np.ptp(ds.X_train[1]) == 0 and np.ptp(ds.X_dev[1]) == 0
        if value == 0.0:
            assert ds.std[1, 0] == 1.0


class TestCsv:
    def test_string_labels_sorted(self, tmp_path):
        """Labels 'cat', 'ant', 'bee' become classes ('ant', 'bee', 'cat') and indices into them."""
        path = write(tmp_path, "x1,x2,label\n1,2,cat\n3,4,ant\n5,6,bee\n7,8,cat\n")
        X, y, classes, names = read_csv(path, "label")
        assert classes == ("ant", "bee", "cat")
        assert y.tolist() == [2, 0, 1, 2]
        assert names == ("x1", "x2")
        assert X.shape == (4, 2) and X.dtype == np.float64
        assert X.tolist() == [[1, 2], [3, 4], [5, 6], [7, 8]]

    def test_numeric_labels_sorted(self, tmp_path):
        """Numeric labels 3, 1, 2 become classes (1, 2, 3), as plain ints."""
        path = write(tmp_path, "a,label\n0.5,3\n1.5,1\n2.5,2\n3.5,3\n")
        _, y, classes, _ = read_csv(path, "label")
        assert classes == (1, 2, 3)
        assert all(type(c) is int for c in classes)
        assert y.tolist() == [2, 0, 1, 2]

    def test_mixed_labels_compared_as_text(self, tmp_path):
        """Labels mixing numbers and words are sorted as text."""
        path = write(tmp_path, "a,label\n1,10\n2,x\n3,9\n")
        _, y, classes, _ = read_csv(path, "label")
        assert classes == ("10", "9", "x")
        assert y.tolist() == [0, 2, 1]

    def test_target_anywhere(self, tmp_path):
        """The target column may be first; the rest are features in file order."""
        path = write(tmp_path, "label,b,a\nno,1,2\nyes,3,4\n")
        X, y, classes, names = read_csv(path, "label")
        assert names == ("b", "a") and X.tolist() == [[1, 2], [3, 4]]
        assert classes == ("no", "yes")

    def test_spaces_after_commas(self, tmp_path):
        """Spaces after a comma are ignored, in values and labels."""
        path = write(tmp_path, "a, label\n1, x\n2, y\n")
        X, y, classes, _ = read_csv(path, "label")
        assert classes == ("x", "y") and X.tolist() == [[1], [2]]

    def test_file_object(self):
        """read_csv also takes a file object, named by ``where``."""
        X, y, classes, _ = read_csv(io.StringIO("a,label\n1,0\n2,1\n"), "label", where="upload")
        assert classes == (0, 1)
        with pytest.raises(DataError, match="^upload: target column"):
            read_csv(io.StringIO("a,b\n1,0\n"), "label", where="upload")

    def test_load_dataset_from_csv(self, tmp_path):
        """A csv DataConfig loads as a Dataset with examples as columns, split and scaled."""
        rows = "".join(f"{i},{(i * 7) % 5},{'ab'[i % 2]}\n" for i in range(40))
        path = write(tmp_path, "u,v,label\n" + rows)
        ds = load(csv=str(path), target="label", dev_fraction=0.25)
        assert ds.X_train.shape == (2, 30) and ds.X_dev.shape == (2, 10)
        assert ds.classes == ("a", "b") and ds.feature_names == ("u", "v")
        assert ds.name == str(path)
        assert np.allclose(ds.X_train.mean(axis=1), 0)


class TestBadCsv:
    def test_empty_file(self, tmp_path):
        """An empty file says it is empty and what was expected."""
        assert "is empty: expected a header line and at least one row" in csv_error(tmp_path, "")

    def test_header_only(self, tmp_path):
        """A header without rows says so."""
        assert csv_error(tmp_path, "a,b,label\n").endswith("has a header but no rows")

    def test_non_numeric_feature(self, tmp_path):
        """A non-numeric feature names the column, the line (header = line 1) and the value."""
        message = csv_error(tmp_path, "a,b,label\n1,2,x\n3,abc,y\n")
        assert "feature column 'b' is not numeric" in message
        assert "line 3 has 'abc'" in message

    def test_missing_values(self, tmp_path):
        """Missing values name the column, how many and the first line."""
        message = csv_error(tmp_path, "a,b,label\n1,2,x\n3,4,y\n5,,x\n6,,y\n")
        assert "column 'b' has 2 missing value(s), the first on line 4" in message

    def test_missing_label(self, tmp_path):
        """A missing label is a missing value in the target column."""
        message = csv_error(tmp_path, "a,label\n1,x\n2,\n3,y\n")
        assert "column 'label' has 1 missing value(s), the first on line 3" in message

    def test_short_row(self, tmp_path):
        """A row with too few fields shows up as missing values on its line."""
        message = csv_error(tmp_path, "a,b,label\n1,2,x\n3,4\n")
        assert "column 'label' has 1 missing value(s), the first on line 3" in message

    @pytest.mark.parametrize("labels, shown", [(("x", "x"), "'x'"), (("1", "1"), "1")])
    def test_single_class(self, tmp_path, labels, shown):
        """A target with one class says which, as the file wrote it."""
        message = csv_error(tmp_path, f"a,label\n1,{labels[0]}\n2,{labels[1]}\n")
        assert f"target column 'label' has a single class ({shown}); a classifier needs at least two" in message
        assert "np." not in message

    def test_target_absent(self, tmp_path):
        """A missing target column lists the columns there are."""
        message = csv_error(tmp_path, "a,b,class\n1,2,x\n", target="label")
        assert message.endswith("target column 'label' not found; its columns are: a, b, class")

    def test_no_feature_columns(self, tmp_path):
        """A file with only the target has no features."""
        assert "has no feature columns besides the target 'label'" in csv_error(tmp_path, "label\nx\ny\n")

    @pytest.mark.parametrize("value", ["inf", "-inf", "1e400"])
    def test_infinite_value(self, tmp_path, value):
        """An infinite value names the column and the line."""
        message = csv_error(tmp_path, f"a,b,label\n1,2,x\n3,4,y\n5,{value},x\n")
        assert "feature column 'b' has an infinite value on line 4" in message

    def test_duplicate_target_column(self, tmp_path):
        """Two columns named like the target are refused (a frame; pandas renames them when reading)."""
        import pandas as pd

        from babysit.datasets import frame_to_arrays

        frame = pd.DataFrame([[1, "x", "y"], [2, "y", "x"]], columns=["a", "label", "label"])
        with pytest.raises(DataError, match="more than one column is named 'label'"):
            frame_to_arrays(frame, "label")

    def test_no_such_file(self, tmp_path):
        """A path that does not exist says so."""
        path = tmp_path / "missing.csv"
        with pytest.raises(DataError) as info:
            read_csv(path, "label")
        assert str(info.value) == f"{path}: no such file"

    def test_directory(self, tmp_path):
        """A directory instead of a file is a DataError, not an OSError."""
        with pytest.raises(DataError, match="cannot read it"):
            read_csv(tmp_path, "label")

    def test_ragged_rows(self, tmp_path):
        """A row with too many fields is reported as a malformed CSV with pandas's line."""
        message = csv_error(tmp_path, "a,b,label\n1,2,x\n3,4,y,9\n")
        assert "is not a well-formed CSV" in message
        assert "line 3" in message

    def test_not_utf8(self, tmp_path):
        """Bytes that are not UTF-8 are refused as not a text file."""
        path = tmp_path / "bin.csv"
        path.write_bytes(b"a,label\n\xff\xfe,1\n2,0\n")
        with pytest.raises(DataError, match="not a text file in UTF-8"):
            read_csv(path, "label")

    def test_via_load_dataset(self, tmp_path):
        """load_dataset passes the CSV's DataError through."""
        path = write(tmp_path, "a,label\n1,x\n2,x\n")
        with pytest.raises(DataError, match="single class"):
            load(csv=str(path), target="label")
