"""Is the book's run (eta 3, m 10, [784, 30, 10]) ever called a failure?

    for s in $(seq 1 12); do python docs/failure_detection.py $s; done

prints one JSON line per seed: epochs run, the verdict (diverged), why training
stopped early (stopped), any warnings, best and final accuracy, the most
output neurons ever pinned, and the seconds taken.
"""
import json
import sys
import time
import warnings

import fastgd

seed = int(sys.argv[1])
training, validation, test = fastgd.load_mnist()
net = fastgd.Network([784, 30, 10], seed=seed)
started = time.time()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    history = net.SGD(training, 100, 10, 3.0, test_data=test, verbose=False, threads=1,
                      kernel="serial")
accuracy = history.column("accuracy")
print(json.dumps({"seed": seed, "epochs": len(history), "diverged": history.diverged,
                  "stopped": history.stopped, "warnings": [str(w.message) for w in caught],
                  "best": accuracy.max(), "final": accuracy[-1],
                  "max_pinned": history.column("pinned_outputs").max(),
                  "seconds": time.time() - started}), flush=True)
