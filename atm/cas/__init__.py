"""The kiosk's link to the operator's Coin ATM Server (CAS)."""
