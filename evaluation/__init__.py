"""The judge: rollouts, normalised scores, behavioral-reward inference, verdicts, reports."""
