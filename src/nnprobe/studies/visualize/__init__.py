"""What does a class, a unit or a layer respond to? Natural, backdoored, adversarially trained and
top-down networks: robustness, class-wise patterns, activation maximisation, caricatures, inversions."""
