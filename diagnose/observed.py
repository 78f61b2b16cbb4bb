"""Groups the inputs show actually formed, whatever recorded them.

NCCL logs, PyTorch's process-group lines, profiler traces and Flight Recorder dumps all
describe the same thing — a set of ranks that formed a communicator — with different
amounts of detail. Reducing each of them to an ObservedGroup lets one reconciliation step
compare all of them with the expected layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from diagnose.model import Evidence


@dataclass
class ObservedGroup:
    """One communicator or process group seen in the inputs.

    `ranks` are global ranks in group order when the evidence tells them (None when only
    comm-local ranks are known); `members_seen` counts the members the inputs actually show,
    which is fewer than `size` when only some nodes' logs are present. `kind` is set when
    the evidence names the group (a pg_desc such as `tp:device` or
    `TENSOR_MODEL_PARALLEL_GROUP`), else the reconciliation infers it from the rank set.
    """

    source: str
    size: int
    ranks: list[int] | None = None
    name: str | None = None
    desc: str | None = None
    kind: str | None = None
    hosts: list[str] = field(default_factory=list)
    nnodes: int | None = None
    members_seen: int = 0
    transports: list[str] = field(default_factory=list)
    late: bool = False
    complete: bool = True
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def crosses_nodes(self) -> bool:
        return (self.nnodes or 0) > 1 or len(set(self.hosts)) > 1
