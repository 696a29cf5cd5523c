"""The vision experiments of LETS (Wang, Jiang, Fu, Zhang, ECCV 2024): CIFAR-10/100, ImageNet and
label noise (the paper's Tables 1 to 6, Figures 2 and 5 to 9), trained with ``vision/train.py``.

A folder of scripts, importable as a package for tests; the library (:mod:`lets_hf`) never imports it.
"""
