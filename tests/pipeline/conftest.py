"""The pipeline world (simulator, database, live and paper links) for every test here."""

from tests.pipeline.test_pipeline import sim, world  # noqa: F401
