"""Prices: the genai-prices catalog, operator overrides, exact decimal costs."""
