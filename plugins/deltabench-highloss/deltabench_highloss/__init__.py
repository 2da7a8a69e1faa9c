"""Flag the training points the victim fits worst: a simple, real detector in one file."""

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from deltabench import Detection, DetectionContext, Detector, Params, hookimpl


class HighLoss(Detector):
    """Flag the fraction of training points with the highest victim loss."""

    name = "high-loss"

    class Params(Params):
        fraction: float = Field(0.05, gt=0, le=1, description="share of the training set to flag")

    def detect(self, ctx: DetectionContext) -> Detection:
        with torch.no_grad():  # in batches, so large training sets fit on a GPU
            loss = torch.cat(
                [
                    F.cross_entropy(ctx.model(xb.to(ctx.device)), yb.to(ctx.device), reduction="none").cpu()
                    for xb, yb in zip(ctx.train.x.split(1024), ctx.train.y.split(1024))
                ]
            ).numpy()
        k = max(1, round(self.params.fraction * len(loss)))
        return Detection(np.argsort(-loss)[:k], scores={"loss": loss})


@hookimpl
def register_detectors(register):
    register(HighLoss)


@hookimpl
def leaderboard_sections(frame, stages):
    """Its own leaderboard section: the share of the training set it flags against its recall."""
    from deltabench.leaderboard import Section

    ok = frame[(frame["detector"] == HighLoss.name) & (frame["status"] == "ok")]
    if ok.empty:
        return []
    victims = ok.drop_duplicates(["attack", "seed"]).assign(share=lambda f: f["flagged"] / f["n_train"])
    table = victims.groupby("attack").agg(
        victims=("seed", "nunique"), flagged=("share", "mean"), recall=("recall", "mean")
    )
    return [Section("High-loss: share flagged and recall, per attack", table.reset_index(), ".3f")]
