"""Ray Tune callbacks of the search (imports Ray: the driver imports this module only when it
builds a Tuner)."""

from __future__ import annotations

from ray.tune.logger import TBXLoggerCallback


class ClosingTBXLoggerCallback(TBXLoggerCallback):
    """Ray's TensorBoard logger, except that it closes the event file of every trial when the
    search ends. Ray's own closes a trial's file only when the trial ends: the file of a trial
    that Ctrl+C interrupted was written at interpreter exit (tensorboardX's atexit handler),
    2 s after the search had signed its folder for --resume (measured), so resuming it was
    refused. Ray adds its own TensorBoard logger only when none is given."""

    def on_experiment_end(self, trials, **info) -> None:
        for trial in trials:
            self.log_trial_end(trial)  # a no-op for a trial whose file is closed already
        super().on_experiment_end(trials, **info)
