"""The Kylin dialect: Apache Kylin's job API (handlers and wire models), over the batch and job services."""
