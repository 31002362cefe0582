"""Groups: assigned and dynamic device groups, membership, and the membership rule language."""
