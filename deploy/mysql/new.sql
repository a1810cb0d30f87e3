-- The new orders service's database (mysql-new): English names, money as
-- integer cents, instants in UTC, status as an ENUM. CDC (banyan cdc run)
-- fills `orders` from the legacy t_order and keeps its checkpoint tables
-- (banyan_cdc_*) here, in the same transactions as the rows. Run once by
-- the MySQL image on an empty data directory; the database `orders` and
-- the service's user `orders` come from MYSQL_DATABASE/MYSQL_USER.
--
-- The table is demo.NewSchema exactly (go test ./deploy/ checks it):
-- `banyan demo-service orders` reads it.

USE orders;

CREATE TABLE orders (
	id             BIGINT PRIMARY KEY,
	user_id        BIGINT NOT NULL,
	subtotal_cents BIGINT NOT NULL,
	discount_pct   INT NOT NULL,
	created_at     DATETIME NOT NULL,
	status         ENUM('paid','shipped','cancelled') NOT NULL
) DEFAULT CHARSET=utf8mb4;

-- banyan's CDC applier and checker: write the mapped rows and the checkpoint.
CREATE USER 'banyan'@'%' IDENTIFIED WITH mysql_native_password BY 'banyan-secret';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON orders.* TO 'banyan'@'%';
