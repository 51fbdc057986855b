"""Which classes share features? Networks trained with one class pair half-swapped, compared by
Welch's t and by the information about every other class, on CIFAR-10."""
