-- A thumbnail belongs to its image: keyed by (image, thumbnail hash), not by the thumbnail hash
-- alone. Two different images can make byte-identical thumbnails (the same picture as PNG and as
-- WebP, a plain colour at two sizes); keyed by the thumbnail hash, the second image's thumbnail was
-- dropped as already stored, so that image was listed without it and a fleet that remembered it
-- had its reference refused once. Such bytes are now stored once per image. An image that lost its
-- thumbnail that way heals when next scraped: a worker finds it stored without the thumbnail it
-- makes, processes it and carries the thumbnail.
ALTER TABLE thumbnails DROP CONSTRAINT thumbnails_pkey;
ALTER TABLE thumbnails ADD CONSTRAINT thumbnails_pkey PRIMARY KEY (image_sha256, sha256);
-- The primary key now serves an image's thumbnails; GetThumbnail looks one up by its hash.
DROP INDEX thumbnails_image;
CREATE INDEX thumbnails_sha256 ON thumbnails (sha256);
