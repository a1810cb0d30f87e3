-- The legacy monolith's database (mysql-legacy), as a ten-year-old shop
-- keeps it: t_ prefixes, abbreviated columns, money as DECIMAL yuan,
-- times as DATETIME in the shop's local zone (Asia/Shanghai), status as
-- magic numbers. Run once by the MySQL image on an empty data directory
-- (docker-entrypoint-initdb.d); the database `shop` is MYSQL_DATABASE.

USE shop;

CREATE TABLE t_product (
  prod_id   INT UNSIGNED  NOT NULL AUTO_INCREMENT PRIMARY KEY,
  prod_name VARCHAR(200)  NOT NULL,
  price     DECIMAL(10,2) NOT NULL COMMENT 'yuan',
  stock     INT           NOT NULL DEFAULT 0,
  on_sale   TINYINT(1)    NOT NULL DEFAULT 1,
  modified  DATETIME      NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP COMMENT 'local time'
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- status: 1 = awaiting payment, 2 = paid, 3 = shipped, 4 = completed,
-- 5 = cancelled. The numbers are the 1-based positions of the new
-- schema's ENUM members, so the value CDC copies lands on the same state.
CREATE TABLE t_order (
  ord_id   BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  usr_id   INT UNSIGNED    NOT NULL,
  amt      DECIMAL(12,2)   NOT NULL COMMENT 'total in yuan, after discount',
  created  DATETIME        NOT NULL COMMENT 'local time (Asia/Shanghai)',
  status   TINYINT         NOT NULL DEFAULT 1 COMMENT '1 unpaid 2 paid 3 shipped 4 done 5 cancelled',
  remark   VARCHAR(255)    NULL,
  KEY idx_usr (usr_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

INSERT INTO t_product (prod_name, price, stock) VALUES
  ('Green tea, 250 g', 38.00, 120),
  ('Porcelain cup', 19.90, 300),
  ('Bamboo steamer', 65.50, 40),
  ('Silk scarf', 128.00, 25);

INSERT INTO t_order (usr_id, amt, created, status, remark) VALUES
  (1001, 57.90,  '2024-01-15 09:30:00', 4, NULL),
  (1002, 128.00, '2024-02-01 23:59:59', 3, 'gift wrap'),
  (1003, 41.21,  '2024-02-02 00:15:00', 2, NULL),
  (1001, 65.50,  '2024-03-10 08:00:00', 5, 'changed mind');

-- banyan's CDC and checker: read the rows, follow the binlog.
CREATE USER 'banyan_repl'@'%' IDENTIFIED WITH mysql_native_password BY 'repl-secret';
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'banyan_repl'@'%';
GRANT SELECT ON shop.* TO 'banyan_repl'@'%';
