"""Troubleshooting + Support: device log uploads with incident IDs, and the support views."""
