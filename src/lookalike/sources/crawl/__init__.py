"""The sites a crawl reads: one adapter per site (OpenGameArt, any site), each turning
listing and content pages into file links with their title, author and licence."""
