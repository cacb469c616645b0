-- One database per node and per service (run once by the postgres image on first start).
CREATE DATABASE validator0;
CREATE DATABASE validator1;
CREATE DATABASE validator2;
CREATE DATABASE validator3;
CREATE DATABASE observer0;
CREATE DATABASE identity;
CREATE DATABASE credit;
CREATE DATABASE roadhealth;
