-- Seed 002's target: Jushuitan shops for BI (scheme jushuitan-shops-to-bi). The scheme writes
-- with INSERT ... ON DUPLICATE KEY UPDATE keyed on the primary key shop_id.
CREATE DATABASE IF NOT EXISTS `bi` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE `bi`;

CREATE TABLE IF NOT EXISTS `bi_shops` (
  `shop_id`         BIGINT       NOT NULL COMMENT '店铺编号',
  `shop_name`       VARCHAR(255) NOT NULL COMMENT '店铺名称',
  `co_id`           BIGINT       NULL     COMMENT '公司编号',
  `shop_site`       VARCHAR(64)  NULL     COMMENT '店铺站点',
  `shop_url`        VARCHAR(512) NULL     COMMENT '店铺网址',
  `created`         DATETIME     NULL     COMMENT '创建时间',
  `nick`            VARCHAR(255) NULL     COMMENT '主账号',
  `session_expired` DATETIME     NULL     COMMENT '授权过期时间',
  `session_uid`     VARCHAR(64)  NULL     COMMENT '会话用户编号',
  `short_name`      VARCHAR(255) NULL     COMMENT '店铺简称',
  `group_id`        BIGINT       NULL     COMMENT '分组编号',
  `group_name`      VARCHAR(255) NULL     COMMENT '分组名称',
  `updated_at`      DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (`shop_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
