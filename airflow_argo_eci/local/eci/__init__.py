"""(package) the local ECI controller: ImageCaches and the image-cache hits of ECI pods."""
