"""The dashboard (Dash + Plotly): reads the API only, REST for history and its WebSocket
for live points."""
