"""The edge: WebRTC and WebSocket termination speaking the OpenAI Realtime API."""
