"""The four studies, each a package: its design, its science, its tables and figures, and its jobs
(one function per rule). A study never imports another: what one takes from another (the
mislabel baseline population) is a file made by a rule.
"""
