"""What a tuning coordinator hands each worker: one typed, validated plan.

A plan crosses processes (a spawned local worker pickles it) and machines (a Prefect deployment's
JSON parameters), so it is a pydantic model: validated once where it is made or read, dumped to
plain JSON to travel (``model_dump(mode="json")``), and validated again on arrival, parameters
included. A worker never looks a key up by name.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from audiovae.config.schema import Params


class TunePlan(BaseModel):
    """One study's work, split into shares of trials."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str                              # ``outer`` or ``inner``: which stage's objective
    params: Params                           # the coordinator's resolved parameters
    root: str                                # the coordinator's checkout (its local workers run there)
    storage: str | None                      # the study storage URL (None: the project's SQLite file)
    study_name: str
    parent_run: str | None                   # the study's MLflow run (None: tracking off)
    seed: int                                # worker i samples with seed + i
    shares: list[int]                        # trials per worker (none when no trial is asked for)
    before: int = 0                          # trials the study held before this run
    started: float = 0.0                     # the coordinator's monotonic clock at the start
    tracking_uri: str | None = None          # the coordinator's store, for workers elsewhere
    elsewhere: bool = False                  # workers on other machines (Prefect deployments)
    commit: str | None = None                # elsewhere: the git commit each worker must be at
    inputs: dict[str, str] | None = None     # elsewhere: the DVC hashes of the inputs each pulls

    def share(self, index: int) -> int:
        """The trials of worker ``index``; a ValueError names the shares there are."""
        if not 0 <= index < len(self.shares):
            raise ValueError(f"--index {index}: the plan has shares 0 to {len(self.shares) - 1}")
        return self.shares[index]

    def only(self, index: int, trials: int) -> TunePlan:
        """The same plan with every share but ``index``'s emptied (one local process's part)."""
        shares = [0] * len(self.shares)
        shares[index] = trials
        return self.model_copy(update={"shares": shares})
