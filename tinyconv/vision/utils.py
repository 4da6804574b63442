"""``torchvision.utils`` for tinyconv."""
