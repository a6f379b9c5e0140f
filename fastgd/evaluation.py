"""What a network scores on a data set: ``Network.evaluation`` returns one."""

from dataclasses import dataclass

# An output neuron is "pinned" when its activation is within PINNED of 0 (or
# of 1) for all but PINNED of the inputs: it no longer depends on the input.
PINNED = 0.01


@dataclass(frozen=True)
class Evaluation:
    """A network's results on a data set.

    correct:   inputs whose highest output activation is the label's neuron
    total:     inputs
    cost:      the network's cost (NaN for no inputs): quadratic, C = 1/(2n) sum_x
               ||y(x) - a||^2, or cross-entropy, C = -(1/n) sum_x sum_j [y_j ln a_j
               + (1 - y_j) ln(1 - a_j)] (see ``Network.evaluation``)
    nonfinite: inputs with a NaN or infinite output (never counted correct)
    pinned:    output neurons whose activation is within PINNED of 0, or of 1, for
               all but a fraction PINNED of the inputs: saturated, they no longer
               respond to the input
    """
    correct: int
    total: int
    cost: float
    nonfinite: int
    pinned: int
    cost_function: str = "quadratic"

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else float("nan")

    def check_finite(self) -> None:
        if self.nonfinite:
            raise ValueError(f"{self.nonfinite} of the {self.total} inputs give NaN or infinite "
                             "outputs: the network's weights are not usable (training diverged?)")
