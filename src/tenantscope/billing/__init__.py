"""Billing: plans and their assignment to tenants (``plans``). Billable-state derivation,
grants, invoices and exports build on them."""
