"""Devices: the managed-device record, its properties and inventory, discovered apps."""
