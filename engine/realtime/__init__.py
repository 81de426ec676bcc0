"""The viewer WebSocket: the sans-I/O protocol and codecs, the gateway, the room hub and its
storefront, comment sampling."""
