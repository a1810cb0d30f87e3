-- The new orders service's database (mysql-new): English names, money as
-- integer cents, instants in UTC, status as an ENUM. CDC (banyan cdc run)
-- fills `orders` from the legacy t_order and keeps its own checkpoint
-- tables (banyan_cdc_*) here, in the same transactions as the rows. Run
-- once by the MySQL image on an empty data directory; the database
-- `orders` is MYSQL_DATABASE.

USE orders;

-- The ENUM order matches legacy t_order.status 1..5 (see legacy.sql).
CREATE TABLE orders (
  id          BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  user_id     INT UNSIGNED    NOT NULL,
  total_cents BIGINT          NOT NULL,
  created_at  DATETIME(6)     NOT NULL COMMENT 'UTC',
  status      ENUM('pending', 'paid', 'shipped', 'completed', 'cancelled') NOT NULL DEFAULT 'pending',
  remark      VARCHAR(255)    NULL,
  KEY idx_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- banyan's CDC applier and checker: write the mapped rows and the checkpoint.
CREATE USER 'banyan'@'%' IDENTIFIED WITH mysql_native_password BY 'banyan-secret';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON orders.* TO 'banyan'@'%';
