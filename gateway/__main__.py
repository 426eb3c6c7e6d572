from gateway.instance.serve import main

main()
