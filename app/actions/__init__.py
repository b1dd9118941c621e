"""The HubSpot workflow action "add contact to Zoom webinar" (W1-W4, R1 of MISSION.md)."""
