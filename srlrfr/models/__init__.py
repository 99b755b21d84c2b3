"""Network registries. Importing this package registers every FNet and SRNet."""
