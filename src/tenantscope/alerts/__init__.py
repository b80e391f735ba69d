"""Alerts: rules evaluated on the query layer's figures, per-tenant states, SLOs with burn
rates, cost anomalies, and the contact points notifications go to."""
