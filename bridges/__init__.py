"""Delivery of accepted alerts to the outside: Matrix first; CAP feeds, SMS later."""
