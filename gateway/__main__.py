from gateway.client.cli import main

main()
