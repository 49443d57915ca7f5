"""Producers: publish assetsync messages to RabbitMQ with pika (persistent, confirmed)."""
