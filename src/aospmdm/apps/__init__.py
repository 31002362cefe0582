"""Apps: the catalog, the APK store, assignments and install status."""
