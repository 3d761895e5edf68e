from crawlfleet.coordinator.main import main

main()
