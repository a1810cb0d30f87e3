-- The legacy monolith's database (mysql-legacy), as a ten-year-old shop
-- keeps it: ord_id and usr_id, money as DECIMAL yuan (subtotal and the
-- discounted total it stored), DATETIME in the shop's local zone
-- (Asia/Shanghai), status as a magic number (1 paid, 2 shipped,
-- 9 cancelled), a memo nobody reads. Run once by the MySQL image on an
-- empty data directory (docker-entrypoint-initdb.d); the database `shop`
-- and the monolith's user `shop` come from MYSQL_DATABASE/MYSQL_USER.
--
-- The table is demo.LegacySchema exactly (go test ./deploy/ checks it):
-- `banyan demo-service legacy` reads and writes it, and seeds it with
-- demo orders when it is empty.

USE shop;

CREATE TABLE t_order (
	ord_id  INT AUTO_INCREMENT PRIMARY KEY,
	usr_id  INT NOT NULL,
	amt     DECIMAL(10,2) NOT NULL,
	disc    TINYINT NOT NULL DEFAULT 0,
	pay_amt DECIMAL(10,2) NOT NULL,
	created DATETIME NOT NULL,
	status  TINYINT NOT NULL,
	memo    VARCHAR(200) NULL
) DEFAULT CHARSET=utf8mb4;

-- banyan's CDC and checker: read the rows, follow the binlog.
CREATE USER 'banyan_repl'@'%' IDENTIFIED WITH mysql_native_password BY 'repl-secret';
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'banyan_repl'@'%';
GRANT SELECT ON shop.* TO 'banyan_repl'@'%';
