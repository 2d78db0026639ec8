"""Human-feedback data: LiFT-HRA records and critic agreement."""
