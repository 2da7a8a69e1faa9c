"""Dataset sources: scikit-learn's bundled digits (the default, no download) and the paper's
CIFAR-10/100 and Imagenette in their standard torchvision formats."""
